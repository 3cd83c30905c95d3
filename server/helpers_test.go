package server

import (
	"context"
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
