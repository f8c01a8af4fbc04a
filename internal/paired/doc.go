// Package paired times the engine at another commit against this one, in
// one process, with benchmix.Paired: on this project's shared VM the speed
// drifts by more than most changes, so separate runs of two test binaries
// cannot tell a 3% change from noise, and turns on the same packets can.
//
// scripts/paired REV copies the engine package's files at REV into base/
// (ignored by git), runs the benchmark in paired_test.go, built only with
// -tags paired, and removes base/ again. Only the engine package itself is
// taken from REV; its subpackages (ipset, hashlimit, ...) are this tree's,
// so REV must share their API.
package paired
