package strmatch

// A deliberately literal re-statement of the kernel path, used as the oracle
// for Matcher.Match: skb_find_text (net/core/skbuff.c) over a linear skb,
// bm_find/compute_prefix_tbl/subpattern (lib/ts_bm.c) and
// kmp_find/compute_prefix_tbl (lib/ts_kmp.c), with tables rebuilt on every
// call and no shortcuts.

func refToUpperForTest(c byte) byte {
	// lib/ctype.c: _L is a-z, 0xDF-0xF6, 0xF8-0xFF.
	if (c >= 'a' && c <= 'z') || (c >= 0xdf && c <= 0xf6) || c >= 0xf8 {
		return c - 32
	}
	return c
}

func refToLowerForTest(c byte) byte {
	// lib/ctype.c: _U is A-Z, 0xC0-0xD6, 0xD8-0xDE.
	if (c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xde) {
		return c + 32
	}
	return c
}

func refFindTextForTest(l3 []byte, from, to uint32, algo Algo, pattern []byte, icase bool) bool {
	// skb_prepare_seq_read(skb, from, to); the first skb_seq_read(0) returns
	// nothing if from >= to, else the linear data from "from" to its end.
	var block []byte
	if from < to && int(from) < len(l3) {
		block = l3[from:]
	}
	ret := uint32(0xffffffff)
	if len(block) > 0 {
		var r int
		if algo == AlgoBM {
			r = refBMForTest(block, pattern, icase)
		} else {
			r = refKMPForTest(block, pattern, icase)
		}
		if r >= 0 {
			ret = uint32(r)
		}
	}
	// return (ret + patlen <= to - from ? ret : UINT_MAX), in u32 arithmetic.
	if ret+uint32(len(pattern)) <= to-from {
		return ret != 0xffffffff
	}
	return false
}

func refBMForTest(text, pattern []byte, icase bool) int {
	patlen := len(pattern)
	pat := make([]byte, patlen)
	for i := range pattern {
		if icase {
			pat[i] = refToUpperForTest(pattern[i])
		} else {
			pat[i] = pattern[i]
		}
	}
	var bad [256]int
	for i := range bad {
		bad[i] = patlen
	}
	for i := 0; i < patlen-1; i++ {
		bad[pat[i]] = patlen - 1 - i
		if icase {
			bad[refToLowerForTest(pat[i])] = patlen - 1 - i
		}
	}
	good := make([]int, patlen)
	good[0] = 1
	for i := 1; i < patlen; i++ {
		good[i] = patlen
	}
	sub := func(i, j, g int) bool {
		x, y := i+g-1, j+g-1
		for {
			a, b := pat[x], pat[y]
			x--
			y--
			if a != b {
				return false
			}
			if y < 0 {
				return true
			}
			g--
			if g == 0 {
				return pat[i-1] != pat[j-1]
			}
		}
	}
	for i, g := patlen-1, 1; i > 0; i, g = i-1, g+1 {
		for j := i - 1; j >= 1-g; j-- {
			if sub(i, j, g) {
				good[g] = patlen - j - g
				break
			}
		}
	}
	shift := patlen - 1
	for shift < len(text) {
		var i int
		matched := true
		for i = 0; i < patlen; i++ {
			c := text[shift-i]
			if icase {
				c = refToUpperForTest(c)
			}
			if c != pat[patlen-1-i] {
				matched = false
				break
			}
		}
		if matched {
			return shift - (patlen - 1)
		}
		bs := bad[text[shift-i]]
		shift = max(shift-i+bs, shift+good[i])
	}
	return -1
}

func refKMPForTest(text, pattern []byte, icase bool) int {
	n := len(pattern)
	up := func(c byte) byte {
		if icase {
			return refToUpperForTest(c)
		}
		return c
	}
	prefix := make([]int, n)
	for k, q := 0, 1; q < n; q++ {
		for k > 0 && up(pattern[k]) != up(pattern[q]) {
			k = prefix[k-1]
		}
		if up(pattern[k]) == up(pattern[q]) {
			k++
		}
		prefix[q] = k
	}
	pat := make([]byte, n)
	for i := range pattern {
		pat[i] = up(pattern[i])
	}
	q := 0
	for i := 0; i < len(text); i++ {
		c := up(text[i])
		for q > 0 && pat[q] != c {
			q = prefix[q-1]
		}
		if pat[q] == c {
			q++
		}
		if q == n {
			return i + 1 - n
		}
	}
	return -1
}
