package homestead_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkProvisioningLatency measures Homestead-prov request latency:
// concurrent clients each PUT private identities with digest credentials
// (one replicated, fsynced write each). It reports p50 and p99.
func BenchmarkProvisioningLatency(b *testing.B) {
	s := newServers(b, nil)
	const clients = 16
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := c; i < b.N; i += clients {
				body := []byte(`{"digest_ha1":"0123456789abcdef0123456789abcdef","realm":"example.com"}`)
				req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/private/bench%d@example.com", s.prov.URL, i), bytes.NewReader(body))
				start := time.Now()
				resp, err := s.client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					b.Errorf("PUT /private: %d", resp.StatusCode)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
