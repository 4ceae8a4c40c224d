//go:build linux

package host

import "syscall"

func statfs(path string) (fsStat, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(path, &s); err != nil {
		return fsStat{}, err
	}
	bs := uint64(s.Bsize)
	return fsStat{
		size:      s.Blocks * bs,
		free:      s.Bfree * bs,
		avail:     s.Bavail * bs,
		files:     s.Files,
		filesFree: s.Ffree,
	}, nil
}
