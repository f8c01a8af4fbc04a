package benchlive

import (
	"context"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/sluice-project/sluice/internal/testnet"
)

// xdpDropRunner attaches the ceiling every XDP filter is measured against:
// a program that counts each frame and returns XDP_DROP, legitimate
// traffic included. The XDP tier's goal is a fraction of this rate.
func xdpDropRunner(ctx context.Context, ns *testnet.NS, iface string) (*Attachment, error) {
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Name: "drops", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("bare XDP_DROP: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bare_drop", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word).WithSource(asm.Comment("count the frame, then XDP_DROP")),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "drop"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
			asm.Return(),
		}})
	if err != nil {
		counter.Close()
		return nil, fmt.Errorf("bare XDP_DROP: %w", err)
	}
	var l link.Link
	err = ns.Do(func() error {
		idx, err := interfaceIndex(iface)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: idx, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		prog.Close()
		counter.Close()
		return nil, fmt.Errorf("bare XDP_DROP: attach: %w", err)
	}
	return &Attachment{
		Stop: func() error {
			err := l.Close()
			prog.Close()
			counter.Close()
			return err
		},
		Dropped: func() (uint64, error) {
			var per []uint64
			if err := counter.Lookup(uint32(0), &per); err != nil {
				return 0, err
			}
			var n uint64
			for _, v := range per {
				n += v
			}
			return n, nil
		},
	}, nil
}

func interfaceIndex(name string) (int, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
}
