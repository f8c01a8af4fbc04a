package engine_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

func BenchmarkZZRefCat(b *testing.B) {
	pr := referenceProgramForTest(b)
	pkts := decodeAll(packet.LinkEthernet, referenceMix())
	k, _ := strconv.Atoi(os.Getenv("ZZK"))
	var sel []packet.Packet
	for i := range pkts {
		if i%20 == k {
			sel = append(sel, pkts[i])
		}
	}
	benchProcess(b, pr, sel, 0)
}
