package rollout

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Handler serves the rollouts' admin API, to be mounted on the admin
// listener only:
//
//	GET  /api/rollouts                   every rollout's status, decisions and evidence
//	GET  /api/rollouts/{name}            one rollout
//	POST /api/rollouts/{name}/{action}   pause, resume, promote, abort, restart
//
// Actions answer 200 with the new status, 404 for an unknown rollout, 409
// when the state does not allow the action, 400 for an unknown action.
func (c *Controller) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /api/rollouts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"rollouts": c.List()})
	})
	m.HandleFunc("GET /api/rollouts/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := c.Get(r.PathValue("name"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such rollout"})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	m.HandleFunc("POST /api/rollouts/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		st, err := c.Act(r.PathValue("name"), r.PathValue("action"))
		switch {
		case errors.Is(err, ErrNotFound):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case errors.Is(err, ErrConflict):
			writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "status": st})
		case err != nil && st.Name == "":
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "status": st})
		default:
			writeJSON(w, http.StatusOK, st)
		}
	})
	return m
}

// Routes returns the patterns Handler serves, for mounting.
func Routes() []string {
	return []string{"GET /api/rollouts", "GET /api/rollouts/{name}", "POST /api/rollouts/{name}/{action}"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
