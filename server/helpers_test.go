package server

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func reflectToken(c any) string {
	return reflect.ValueOf(c).Elem().FieldByName("token").String()
}

func mustRecord(t *testing.T, p *platform, id int64) string {
	t.Helper()
	var rec string
	if err := p.srv.db.QueryRowContext(context.Background(), `SELECT record FROM jobs WHERE id = ?`, id).Scan(&rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// healthy fails the test unless the platform answers its health check
// with ok; when says when it is asked.
func (p *platform) healthy(t *testing.T, when string) {
	t.Helper()
	resp, err := http.Get(p.base + "/v1/health")
	if err != nil {
		t.Fatalf("health %s: %v", when, err)
	}
	var health struct {
		Status string `json:"status"`
	}
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || health.Status != "ok" {
		t.Fatalf("health %s: %d %+v", when, resp.StatusCode, health)
	}
}
