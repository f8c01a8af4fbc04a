package rules

import "fmt"

// Error is a problem at a position of a rules file. Col is the 1-based byte
// column of Word, the offending token.
type Error struct {
	File string
	Line int
	Col  int
	Word string
	Msg  string
	Err  error // underlying cause, if any
}

func (e *Error) Error() string {
	pos := fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	if e.Word != "" {
		return fmt.Sprintf("%s: %s (at %q)", pos, e.Msg, e.Word)
	}
	return fmt.Sprintf("%s: %s", pos, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is something the kernel accepts but that will likely surprise the
// operator: rules ingress traffic never reaches, a limit whose burst the
// kernel's arithmetic distorts, and so on. `sluice check` prints them.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: warning: %s", w.File, w.Line, w.Msg) }
