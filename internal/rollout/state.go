package rollout

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
)

// saved is a rollout's state on disk.
type saved struct {
	Version int    `json:"version"`
	Status  Status `json:"status"`
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func (c *Controller) statePath(name string) string {
	return filepath.Join(c.o.StateDir, "rollout-"+safeName.ReplaceAllString(name, "_")+".json")
}

// save writes r's state atomically (temp file, fsync, rename, fsync of
// the directory). c.mu is held; errors are logged and kept on the status.
func (c *Controller) save(r *rollout) {
	if c.o.StateDir == "" {
		return
	}
	st := r.st
	st.LastAnalysis = nil // the evidence is in the decisions
	if err := writeAtomic(c.statePath(r.cfg.Name), saved{Version: 1, Status: st}); err != nil {
		r.st.Error = err.Error()
		c.o.Logger.Warn("saving rollout state", "rollout", r.cfg.Name, "error", err)
	}
}

func writeAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".rollout-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// load reads a saved state; a missing or unreadable file is no state.
func (c *Controller) load(name string) (Status, bool) {
	if c.o.StateDir == "" {
		return Status{}, false
	}
	b, err := os.ReadFile(c.statePath(name))
	if err != nil {
		return Status{}, false
	}
	var s saved
	if err := json.Unmarshal(b, &s); err != nil || s.Version != 1 || s.Status.Name != name {
		c.o.Logger.Warn("ignoring unreadable rollout state", "rollout", name, "error", err)
		return Status{}, false
	}
	if s.Status.Step >= len(s.Status.Steps) || s.Status.Step < -1 || len(s.Status.Decisions) > maxDecisions {
		return Status{}, false
	}
	return s.Status, true
}
