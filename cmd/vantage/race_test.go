//go:build race

package main

// raceEnabled is true under the race detector, which makes the largest
// estate tests too slow to run at full size.
const raceEnabled = true
