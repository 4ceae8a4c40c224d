//go:build !linux

package host

import "errors"

func statfs(string) (fsStat, error) {
	return fsStat{}, errors.New("statfs: filesystem figures are read on Linux only")
}
