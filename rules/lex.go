package rules

import "strings"

// token is one word of a rule line with its 1-based column.
type token struct {
	s   string
	col int
	// as is the word as written when s is what it stands for (an
	// abbreviated long option spelled in full); errors quote it.
	as string
}

// maxWord is the longest word iptables-restore takes: its parameter
// buffer holds 1024 bytes with the terminating NUL ("Parameter too long!").
const maxWord = 1023

// splitLine splits a rule line into words as iptables-restore 1.8.9 does
// (add_param_to_argv in iptables/xshared.c): spaces, tabs and newlines
// separate words; a double quote opens a quoted part, inside which a
// backslash takes the next character literally; the closing quote ends
// the word, even an empty one (`""` is an empty argument, `"a"b` two
// words). Outside quotes a backslash and a single quote are ordinary
// characters. A quote left open runs to the end of the line, and the
// line's newline joins the word (unterminated is then true).
func splitLine(line string) (toks []token, unterminated bool, lerr *lexError) {
	var b strings.Builder
	start := -1 // byte offset where the current word began
	inQuote, escaped := false, false
	flush := func() {
		toks = append(toks, token{s: b.String(), col: start + 1})
		b.Reset()
		start = -1
	}
	add := func(c byte, i int) {
		if start < 0 {
			start = i
		}
		b.WriteByte(c)
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		if b.Len() >= maxWord {
			return nil, false, &lexError{col: start + 1, msg: "word longer than 1023 bytes: iptables-restore refuses it (Parameter too long!)"}
		}
		switch {
		case inQuote && escaped:
			add(c, i)
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case inQuote && c == '"':
			inQuote = false
			flush()
		case inQuote:
			add(c, i)
		case c == '"':
			inQuote = true
			if start < 0 {
				start = i
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if b.Len() > 0 {
				flush()
			}
		default:
			add(c, i)
		}
	}
	if inQuote {
		b.WriteByte('\n')
		unterminated = true
	}
	if b.Len() > 0 {
		flush()
	}
	return toks, unterminated, nil
}

type lexError struct {
	col int
	msg string
}
