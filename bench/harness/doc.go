// Package harness is the library behind the load harness (bench/cmd/harness):
// parsing wrk's output and /proc/<pid>/stat, rendering the targets' configs
// from templates, starting and stopping the processes under test by PID, and
// summarising rounds into a Markdown table.
//
// Everything here is plain functions and small types with no package state;
// the command wires them together. Nothing in this package sends traffic
// except Proc.WaitReady, which only talks to 127.0.0.1.
package harness
