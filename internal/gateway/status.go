package gateway

import (
	"sort"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

// RouteStatus describes a serving route for the admin API.
type RouteStatus struct {
	Name      string        `json:"name"`
	Template  string        `json:"template"`
	Listeners []string      `json:"listeners,omitempty"`
	Match     config.Match  `json:"match"`
	Service   string        `json:"service,omitempty"`
	Split     *config.Split `json:"split,omitempty"`
	Priority  int           `json:"priority"`
	// Status is "enabled" when the route serves, or "warning" when one of
	// its services has no available host.
	Status string   `json:"status"`
	Errors []string `json:"errors,omitempty"`
}

// ServiceStatus describes a serving service and its hosts.
type ServiceStatus struct {
	Name          string              `json:"name"`
	LoadBalancing string              `json:"load_balancing"`
	Status        string              `json:"status"`
	Pool          upstream.PoolStatus `json:"pool"`
}

// Routes returns the serving routes in config order.
func (g *Gateway) Routes() []RouteStatus {
	snap := g.cur.Load()
	out := make([]RouteStatus, 0, len(snap.routes))
	for _, rt := range snap.table.Routes() {
		rc := rt.Config
		st := RouteStatus{Name: rt.Name, Template: rt.Template, Listeners: rc.Listeners, Match: rc.Match,
			Service: rc.Service, Split: rc.Split, Priority: rc.Priority, Status: "enabled"}
		for _, name := range routeServices(rc) {
			if svc := snap.services[name]; svc != nil && !anyAvailable(svc.pool) {
				st.Status = "warning"
				st.Errors = append(st.Errors, "service "+name+" has no available upstream")
			}
		}
		out = append(out, st)
	}
	return out
}

// Services returns the serving services sorted by name.
func (g *Gateway) Services() []ServiceStatus {
	snap := g.cur.Load()
	out := make([]ServiceStatus, 0, len(snap.services))
	for name, svc := range snap.services {
		st := ServiceStatus{Name: name, LoadBalancing: svc.cfg.LoadBalancing.Policy, Status: "up", Pool: svc.pool.Status()}
		if !anyAvailable(svc.pool) {
			st.Status = "down"
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func anyAvailable(p *upstream.Pool) bool {
	for _, h := range p.Hosts() {
		if h.Available() {
			return true
		}
	}
	return false
}

func routeServices(rc *config.Route) []string {
	if rc.Split == nil {
		return []string{rc.Service}
	}
	names := make([]string, 0, len(rc.Split.Services))
	for _, s := range rc.Split.Services {
		names = append(names, s.Service)
	}
	return names
}
