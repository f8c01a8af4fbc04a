// Package rules is sluice's rule model and its parsers for the text that
// operators already have: iptables-save / iptables-restore (and the ip6tables
// variants). The model keeps each rule's file position and text, because
// every counter sluice reports is tied back to a line of the operator's own
// file, and every error names file:line:col and the offending word.
//
// Parsing is all or nothing: a file with one bad word yields an error and no
// ruleset, so a broken reload can never leave a half-applied policy.
//
// The package validates everything the kernel's checkentry functions would
// reject at iptables-restore time, so that a file sluice accepts is a file
// the kernel accepts too. Matches with state or byte-level programs (u32,
// bpf, string, limit, hashlimit, recent, set) are parsed into the
// configuration types of their engine packages; the engine turns the model
// into compiled matchers.
package rules
