// Package cmdenv is what the binaries (cmd/server, cmd/monitor,
// cmd/loadgen) share around their run function: a signal-aware [Main],
// typed environment variables whose errors name the variable ([Int],
// [Duration], [Bool], [Or]) and the process logger ([NewLogger]: readable
// text lines on a terminal, JSON lines elsewhere).
package cmdenv
