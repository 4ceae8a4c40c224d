package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/vantage-gateway/vantage/internal/clock"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// maxProductID is the largest product id the catalog knows; others are 404.
const maxProductID = 500

// handler returns the instance's routes, by service.
func (in *instance) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	switch in.service {
	case Storefront:
		mux.HandleFunc("GET /{$}", in.storefrontHome)
		mux.HandleFunc("GET /products/{id}", in.storefrontProduct)
	case Catalog, CatalogV2:
		mux.HandleFunc("GET /products", in.catalogList)
		mux.HandleFunc("GET /products/{id}", in.catalogProduct)
	case Inventory:
		mux.HandleFunc("GET /stock/{id}", in.inventoryStock)
	case Orders:
		mux.HandleFunc("POST /orders", in.ordersCreate)
		mux.HandleFunc("GET /orders/{id}", in.ordersGet)
	case Payments:
		mux.HandleFunc("POST /charge", in.paymentsCharge)
	case PaymentsQueue:
		mux.HandleFunc("POST /charge", in.paymentsDefer)
	}
	return mux
}

// Storefront.

// storefrontHome renders the home page: a title, a bit of HTML and four
// featured products from the catalog.
func (in *instance) storefrontHome(w http.ResponseWriter, r *http.Request) {
	var list struct {
		Products []product `json:"products"`
	}
	status, err := in.getJSON(r.Context(), Catalog, in.peerURL(Catalog)+"/products?limit=4", &list)
	if err != nil || status != http.StatusOK {
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": "catalog unavailable", "upstream_status": status})
		return
	}
	if !clock.Sleep(r.Context(), in.rng.latency(2*time.Millisecond, 0.3, 0)) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"page":     "home",
		"title":    "Vantage Demo Shop",
		"html":     "<h1>Vantage Demo Shop</h1><p>Everything you never needed, observed end to end.</p>",
		"featured": list.Products,
	})
}

// storefrontProduct renders a product page: the product from the catalog
// and, for even ids, its stock from inventory (the page degrades to "stock
// unknown" when inventory fails).
func (in *instance) storefrontProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var p product
	status, err := in.getJSON(r.Context(), Catalog, in.peerURL(Catalog)+"/products/"+strconv.Itoa(id), &p)
	switch {
	case err != nil || status >= 500:
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": "catalog unavailable", "upstream_status": status})
		return
	case status == http.StatusNotFound:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such product", "id": id})
		return
	case status != http.StatusOK:
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": "unexpected catalog answer", "upstream_status": status})
		return
	}
	page := map[string]any{"page": "product", "product": p, "html": "<h1>" + p.Name + "</h1>"}
	if id%2 == 0 {
		var st stock
		if status, err := in.getJSON(r.Context(), Inventory, in.peerURL(Inventory)+"/stock/"+strconv.Itoa(id), &st); err == nil && status == http.StatusOK {
			page["stock"] = st.InStock
		} else {
			page["stock"] = "unknown"
		}
	}
	if !clock.Sleep(r.Context(), in.rng.latency(2*time.Millisecond, 0.3, 0)) {
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// Catalog (both versions).

type product struct {
	ID      int     `json:"id"`
	Name    string  `json:"name"`
	Price   float64 `json:"price"`
	Version string  `json:"catalog_version"`
}

var (
	adjectives = []string{"Quiet", "Sturdy", "Bright", "Tiny", "Vintage", "Smart", "Cosy", "Rapid"}
	nouns      = []string{"Lamp", "Kettle", "Backpack", "Notebook", "Headphones", "Mug", "Chair", "Umbrella", "Clock"}
)

func makeProduct(id int, version string) product {
	return product{
		ID:      id,
		Name:    adjectives[id%len(adjectives)] + " " + nouns[(id/len(adjectives))%len(nouns)],
		Price:   float64(500+(id*7919)%9500) / 100,
		Version: version,
	}
}

// catalogFail decides whether this catalog call fails: about 1% for
// catalog (half 500, half 503, which the gateway retries), 8% for the
// catalog-v2 canary (500: a bug of the new version, not retried).
func (in *instance) catalogFail(w http.ResponseWriter) bool {
	f := in.rng.float()
	switch {
	case in.service == CatalogV2 && f < in.shop.canaryErrorRate():
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "nil pointer in price formatter"})
		return true
	case in.service == Catalog && f < 0.005:
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "database read failed"})
		return true
	case in.service == Catalog && f < 0.01:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "overloaded, try again"})
		return true
	}
	return false
}

// catalogLatency is lognormal around 8 ms with a tail (v2 is a bit slower).
func (in *instance) catalogLatency() time.Duration {
	median := 8 * time.Millisecond
	if in.service == CatalogV2 {
		median = 11 * time.Millisecond
	}
	return in.rng.latency(median, 0.5, 0.02)
}

func (in *instance) catalogList(w http.ResponseWriter, r *http.Request) {
	if !clock.Sleep(r.Context(), in.catalogLatency()) || in.catalogFail(w) {
		return
	}
	limit := 20
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 && l < limit {
		limit = l
	}
	first := 1 + in.rng.intN(maxProductID-limit)
	out := make([]product, 0, limit)
	for id := first; id < first+limit; id++ {
		out = append(out, makeProduct(id, in.version))
	}
	writeJSON(w, http.StatusOK, map[string]any{"products": out, "served_by": in.id})
}

func (in *instance) catalogProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	spanFrom(r.Context()).SetAttributes(attribute.Int("product.id", id))
	if !clock.Sleep(r.Context(), in.catalogLatency()) || in.catalogFail(w) {
		return
	}
	if id < 1 || id > maxProductID {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such product", "id": id})
		return
	}
	w.Header().Set("X-Served-By", in.id)
	writeJSON(w, http.StatusOK, makeProduct(id, in.version))
}

// Inventory.

type stock struct {
	ID        int    `json:"id"`
	InStock   int    `json:"in_stock"`
	Warehouse string `json:"warehouse"`
}

func (in *instance) inventoryStock(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if !clock.Sleep(r.Context(), in.rng.latency(3*time.Millisecond, 0.4, 0.01)) {
		return
	}
	writeJSON(w, http.StatusOK, stock{ID: id, InStock: (id * 31) % 57, Warehouse: "ams-1"})
}

// Orders.

type orderRequest struct {
	ProductID int `json:"product_id"`
	Quantity  int `json:"quantity"`
}

// ordersCreate takes an order and charges it through payments. A charge
// deferred by payments-queue (202) still makes an order, with its payment
// pending.
func (in *instance) ordersCreate(w http.ResponseWriter, r *http.Request) {
	var req orderRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "body must be JSON like {\"product_id\": 42, \"quantity\": 1}"})
		return
	}
	if req.ProductID < 1 || req.ProductID > maxProductID || req.Quantity < 1 || req.Quantity > 10 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "product_id must be 1..500 and quantity 1..10"})
		return
	}
	id := in.shop.orderID.Add(1)
	spanFrom(r.Context()).SetAttributes(attribute.Int64("order.id", id))
	amount := makeProduct(req.ProductID, "").Price * float64(req.Quantity)
	var charge map[string]any
	status, err := in.postJSON(r.Context(), Payments, in.paymentsURL(), map[string]any{"order_id": id, "amount": amount}, &charge)
	switch {
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": "payment service unreachable", "order_id": id})
	case status == http.StatusOK:
		writeJSON(w, http.StatusCreated, map[string]any{"id": id, "status": "paid", "amount": amount})
	case status == http.StatusAccepted:
		writeJSON(w, http.StatusCreated, map[string]any{"id": id, "status": "payment_pending", "amount": amount})
	default:
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": "payment failed", "order_id": id, "payment_status": status})
	}
}

var orderStates = []string{"paid", "packed", "shipped", "delivered"}

// ordersGet reports an order's state; ids not yet handed out are 404.
func (in *instance) ordersGet(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if !clock.Sleep(r.Context(), in.rng.latency(4*time.Millisecond, 0.4, 0.01)) {
		return
	}
	if id < 1 || int64(id) > in.shop.orderID.Load() {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such order", "id": id})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "status": orderStates[id%len(orderStates)]})
}

// Payments.

// paymentsCharge is the flaky dependency: fast and reliable in good phases,
// slow and failing half the time in bad ones (see Flaky).
func (in *instance) paymentsCharge(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	bad := in.shop.PaymentsBad()
	spanFrom(r.Context()).SetAttributes(attribute.Bool("payments.degraded", bad))
	if bad {
		if !clock.Sleep(r.Context(), min(in.rng.latency(900*time.Millisecond, 0.5, 0), 2500*time.Millisecond)) {
			return
		}
		if in.rng.float() < 0.5 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "card processor timed out"})
			return
		}
	} else {
		if !clock.Sleep(r.Context(), in.rng.latency(20*time.Millisecond, 0.4, 0.01)) {
			return
		}
		if in.rng.float() < 0.005 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "card processor busy"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "charged"})
}

// paymentsDefer is the fallback: it accepts a charge to be made later.
func (in *instance) paymentsDefer(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	if !clock.Sleep(r.Context(), in.rng.latency(2*time.Millisecond, 0.3, 0)) {
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "deferred"})
}

// Helpers.

// getJSON GETs url from peer and decodes a 200 answer into out. It returns
// the status; err is set when no answer came.
func (in *instance) getJSON(ctx context.Context, peer, url string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	return in.do(peer, req, out)
}

// postJSON POSTs body as JSON to url and decodes a 2xx answer into out.
func (in *instance) postJSON(ctx context.Context, peer, url string, body, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	return in.do(peer, req, out)
}

func (in *instance) do(peer string, req *http.Request, out any) (int, error) {
	req.Header.Set("User-Agent", "vantage-demo-"+in.service+"/"+in.version)
	resp, err := in.clients[peer].Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.NewDecoder(body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s answer: %w", peer, err)
		}
	}
	_, _ = io.Copy(io.Discard, body)
	return resp.StatusCode, nil
}

// pathID parses the {id} path value, answering 400 when it is not a number.
func pathID(w http.ResponseWriter, r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "id must be a number"})
		return 0, false
	}
	return id, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // the pages carry a little HTML; keep it readable
	_ = enc.Encode(v)
}

// rng is a seeded random source safe for concurrent use.
type rng struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newRNG(seed, stream uint64) *rng {
	return &rng{r: rand.New(rand.NewPCG(seed, stream))}
}

func (g *rng) float() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Float64()
}

func (g *rng) intN(n int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.IntN(n)
}

// latency draws a lognormal duration with the given median and sigma; with
// probability tail, the draw is multiplied by 4 to 10 (the slow tail).
func (g *rng) latency(median time.Duration, sigma, tail float64) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := float64(median) * math.Exp(sigma*g.r.NormFloat64())
	if tail > 0 && g.r.Float64() < tail {
		d *= 4 + 6*g.r.Float64()
	}
	return time.Duration(d)
}

// canaryErrorRate is Options.CanaryErrorRate after its default.
func (s *Shop) canaryErrorRate() float64 {
	switch r := s.opts.CanaryErrorRate; {
	case r == 0:
		return 0.08
	case r < 0:
		return 0
	default:
		return r
	}
}
