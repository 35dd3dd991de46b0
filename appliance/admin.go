package appliance

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"

	"stillwater/appliance/config"
	"stillwater/consensus"
	"stillwater/kv"
)

// adminHandler serves the local admin API that the stillwater command uses.
// It listens on the node's own address and every request must carry the
// token derived from the site key.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	// Go's profiler, behind the admin token, for performance work on a
	// running appliance.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /cluster/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, n.cons.Status(r.Context()))
	})
	mux.HandleFunc("POST /cluster/decommission", func(w http.ResponseWriter, r *http.Request) {
		if err := n.cons.Decommission(r.Context()); err != nil {
			httpError(w, err)
			return
		}
		w.Write([]byte("decommissioned\n"))
		// The reply goes out before the node stops serving.
		http.NewResponseController(w).Flush()
		n.stop()
	})
	mux.HandleFunc("POST /cluster/remove-node", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if id == "" {
			http.Error(w, "missing node id", http.StatusBadRequest)
			return
		}
		if id == n.settings.NodeID {
			http.Error(w, "a node cannot remove itself: use decommission", http.StatusBadRequest)
			return
		}
		if err := n.cons.RemoveNode(r.Context(), id); err != nil {
			httpError(w, err)
			return
		}
		fmt.Fprintf(w, "removed %s\n", id)
	})
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if err := n.cons.Backup(r.Context(), w); err != nil {
			// Headers are gone; a trailer tells the client the body is incomplete.
			w.Header().Set(http.TrailerPrefix+"X-Backup-Error", err.Error())
		}
	})
	mux.HandleFunc("POST /restore", func(w http.ResponseWriter, r *http.Request) {
		count, err := n.cons.Restore(r.Context(), r.Body)
		if err != nil {
			httpError(w, err)
			return
		}
		fmt.Fprintf(w, "restored %d batches\n", count)
	})
	mux.HandleFunc("GET /config/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if config.FileName(name) == "" {
			http.Error(w, fmt.Sprintf("unknown configuration %q; known: %s", name, strings.Join(config.Names(), ", ")), http.StatusNotFound)
			return
		}
		st, err := n.cons.MetaLinearizable(r.Context())
		if err != nil {
			httpError(w, err)
			return
		}
		doc, ok := st.Configs[name]
		if !ok {
			http.Error(w, fmt.Sprintf("no %s has been uploaded to this site", name), http.StatusNotFound)
			return
		}
		w.Write(doc.Content)
	})
	mux.HandleFunc("PUT /config/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := config.Validate(name, body); err != nil {
			// The document in force is left as it was.
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := n.cons.SetConfig(r.Context(), name, body); err != nil {
			httpError(w, err)
			return
		}
		fmt.Fprintf(w, "%s uploaded; every node applies it now\n", name)
	})
	mux.HandleFunc("GET /kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		var opts []kv.ReadOption
		if r.URL.Query().Get("local") != "" {
			opts = append(opts, kv.LocalRead())
		}
		rec, err := n.KV.Get(r.Context(), r.PathValue("key"), opts...)
		if err != nil {
			httpError(w, err)
			return
		}
		w.Header().Set("X-Version", fmt.Sprint(rec.Version))
		w.Write(rec.Value)
	})
	mux.HandleFunc("PUT /kv/{key...}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v, err := n.KV.Put(r.Context(), r.PathValue("key"), body)
		if err != nil {
			httpError(w, err)
			return
		}
		w.Header().Set("X-Version", fmt.Sprint(v))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /numbers", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		start, err1 := strconv.ParseInt(q.Get("start"), 10, 64)
		count, err2 := strconv.ParseInt(q.Get("count"), 10, 64)
		if err1 != nil || err2 != nil {
			http.Error(w, "start and count must be integers", http.StatusBadRequest)
			return
		}
		created, present, err := n.IMS.Ellis.CreateNumbers(r.Context(), start, count, q.Get("pstn") == "true", q.Get("realm"))
		if err != nil {
			httpError(w, err)
			return
		}
		writeJSON(w, map[string]int{"created": created, "present": present})
	})
	mux.HandleFunc("GET /timers/stats", func(w http.ResponseWriter, r *http.Request) {
		stats, err := n.Timers.Stats(r.Context())
		if err != nil {
			httpError(w, err)
			return
		}
		writeJSON(w, stats)
	})
	mux.HandleFunc("POST /debug/partition", func(w http.ResponseWriter, r *http.Request) {
		var hosts []string
		if err := json.NewDecoder(r.Body).Decode(&hosts); err != nil {
			http.Error(w, "body must be a JSON list of peer IP addresses: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := n.cons.Partition(hosts); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	token, _ := n.settings.AdminToken()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "missing or wrong admin token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// httpError maps storage errors onto HTTP statuses with the reason in the body.
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, kv.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, kv.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, kv.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, consensus.ErrNoQuorum), errors.Is(err, consensus.ErrIndeterminate):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, err.Error(), code)
}
