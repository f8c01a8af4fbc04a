// Package engine is sluice's reference evaluator: it compiles a rules model
// into flat arrays of specialised matchers and runs packets through the
// ingress hooks exactly as the kernel's ipt_do_table / ip6t_do_table do —
// the same traversal, the same counters, the same hotdrops.
//
// The compiled Program is immutable and shared; each goroutine that
// evaluates packets owns a Worker holding its counters and scratch state,
// so the hot path takes no locks. Counters are atomics owned by one writer
// and summed by readers at scrape time.
//
// Per-rule matching avoids interface calls: a rule is a fixed header check
// (struct ipt_ip's fields) followed by a slice of ops dispatched by a
// switch on a small kind enum. Stateful matches (hashlimit, recent, limit,
// sets) keep their state in the engine packages named after them, shared by
// all workers.
package engine
