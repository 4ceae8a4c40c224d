package accesslog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// fileMode is the mode of a log file the gateway creates.
const fileMode = 0o640

// sink is where the writer goroutine puts batches of whole records.
type sink interface {
	io.Writer
	// Reopen reopens the output, for logrotate; a no-op for streams.
	Reopen() error
	// Close releases the output. It must not block on a Write in
	// progress.
	Close() error
}

// streamSink writes to a stream it does not own (stdout, stderr).
type streamSink struct{ w io.Writer }

func (s streamSink) Write(p []byte) (int, error) { return s.w.Write(p) }
func (streamSink) Reopen() error                 { return nil }
func (streamSink) Close() error                  { return nil }

// fileSink appends to a file, reopens it on request and, when maxSize is
// set, rotates it by size: path → path.1 → path.2 ... up to maxBackups.
// Write, Reopen and rotation are serialised by mu; Close is not, so that it
// can unblock a Write stuck on a slow disk.
type fileSink struct {
	path       string
	maxSize    int64
	maxBackups int
	// onError reports rotation problems that do not fail the write.
	onError func(msg string, err error)

	mu   sync.Mutex
	f    *os.File
	size int64

	closeMu sync.Mutex
	closed  bool
}

func openFileSink(path string, maxSize int64, maxBackups int, onError func(string, error)) (*fileSink, error) {
	s := &fileSink{path: path, maxSize: maxSize, maxBackups: maxBackups, onError: onError}
	f, size, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	s.f, s.size = f, size
	return s, nil
}

func openAppend(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return nil, 0, fmt.Errorf("access log: opening %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("access log: stat %s: %w", path, err)
	}
	return f, st.Size(), nil
}

// Write appends p, which holds whole records, rotating first when p would
// take the file past maxSize.
func (s *fileSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxSize > 0 && s.size > 0 && s.size+int64(len(p)) > s.maxSize {
		if err := s.rotateLocked(); err != nil && s.onError != nil {
			s.onError("access log rotation failed; still writing to the current file", err)
		}
	}
	if s.f == nil {
		return 0, fmt.Errorf("access log: %s: %w", s.path, fs.ErrClosed)
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	return n, err
}

// rotateLocked shifts the backups, renames the live file to path.1 and
// starts a new one. On failure the current file stays in use.
func (s *fileSink) rotateLocked() error {
	for i := s.maxBackups - 1; i >= 1; i-- {
		err := os.Rename(s.backup(i), s.backup(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("access log: rotating %s: %w", s.backup(i), err)
		}
	}
	if s.maxBackups > 0 {
		if err := os.Rename(s.path, s.backup(1)); err != nil {
			return fmt.Errorf("access log: rotating %s: %w", s.path, err)
		}
	} else if err := os.Remove(s.path); err != nil {
		return fmt.Errorf("access log: rotating %s: %w", s.path, err)
	}
	return s.swapLocked()
}

func (s *fileSink) backup(i int) string { return s.path + "." + strconv.Itoa(i) }

// swapLocked opens path afresh and closes the old file only once the new
// one is open.
func (s *fileSink) swapLocked() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return fmt.Errorf("access log: %s: %w", s.path, fs.ErrClosed)
	}
	f, size, err := openAppend(s.path)
	if err != nil {
		return err
	}
	old := s.f
	s.f, s.size = f, size
	if old != nil {
		old.Close()
	}
	return nil
}

// Reopen closes the file and opens path again, so that after logrotate
// renamed it the gateway writes to a new file. If opening fails the old file
// stays in use and the error is returned.
func (s *fileSink) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swapLocked()
}

// Close closes the file. It does not wait for a Write in progress, which
// then fails.
func (s *fileSink) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// s.f may be swapped only under closeMu (see swapLocked), so reading it
	// here is safe without mu.
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
