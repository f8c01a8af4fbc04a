// Package engine is sluice's reference evaluator: it compiles a rules model
// into flat arrays of specialised matchers and runs packets through the
// ingress hooks exactly as the kernel's ipt_do_table / ip6t_do_table do —
// the same traversal, the same counters, the same hotdrops.
//
// The compiled Program is immutable and shared; each goroutine that
// evaluates packets owns a Worker holding its counters and scratch state.
// Counters are plain integers the worker alone writes; it holds its own,
// uncontended, lock while it judges a batch (or one packet), and readers
// take it to copy them at scrape time, between batches.
//
// Per-rule matching avoids interface calls: a rule is a fixed header check
// (struct ipt_ip's fields) followed by a slice of ops dispatched by a
// switch on a small kind enum. Stateful matches (hashlimit, recent, limit,
// sets) keep their state in the engine packages named after them, shared by
// all workers.
package engine
