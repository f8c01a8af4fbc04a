package rules

import "strings"

// token is one word of a rule line with its 1-based column.
type token struct {
	s   string
	col int
}

// splitLine splits a rule line into words the way iptables-restore does:
// whitespace separates words, double or single quotes group them, and a
// backslash escapes the next character inside or outside quotes. iptables-save
// quotes --comment, --u32, --bytecode and --string values this way.
func splitLine(line string) ([]token, *lexError) {
	var toks []token
	i := 0
	for i < len(line) {
		c := line[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			i++
			continue
		}
		start := i
		var b strings.Builder
		quoted := false
		for i < len(line) {
			c = line[i]
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				break
			}
			switch c {
			case '\\':
				if i+1 < len(line) {
					b.WriteByte(line[i+1])
					i += 2
					continue
				}
				b.WriteByte(c)
				i++
			case '"', '\'':
				quoted = true
				q := c
				i++
				closed := false
				for i < len(line) {
					if line[i] == '\\' && i+1 < len(line) && (line[i+1] == q || line[i+1] == '\\') {
						b.WriteByte(line[i+1])
						i += 2
						continue
					}
					if line[i] == q {
						closed = true
						i++
						break
					}
					b.WriteByte(line[i])
					i++
				}
				if !closed {
					return nil, &lexError{col: start + 1, msg: "unterminated quoted string"}
				}
			default:
				b.WriteByte(c)
				i++
			}
		}
		s := b.String()
		if s == "" && !quoted {
			continue
		}
		toks = append(toks, token{s: s, col: start + 1})
	}
	return toks, nil
}

type lexError struct {
	col int
	msg string
}
