package admin

import (
	"context"
	"time"
)

// showStats: SHOW STATS, totals per database since the proxy started, with
// PgBouncer's column names. Times are in microseconds; the avg_* rates
// (per second) and averages are over the whole time since the first
// connection to the database, not over a sliding period.
func showStats(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"database", "total_xact_count", "total_query_count", "total_received", "total_sent",
		"total_xact_time", "total_query_time", "total_wait_time", "total_logins",
		"avg_xact_count", "avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time"}}
	now := time.Now()
	for _, s := range p.Stats() {
		res.rows = append(res.rows, []string{s.Database, itoa(s.Xacts), itoa(s.Queries), itoa(s.Received), itoa(s.Sent),
			micros(s.XactTime), micros(s.QueryTime), micros(s.WaitTime), itoa(s.Logins),
			perSecond(s.Xacts, s.Since, now), perSecond(s.Queries, s.Since, now),
			perSecond(s.Received, s.Since, now), perSecond(s.Sent, s.Since, now),
			avg(s.XactTime, s.Xacts), avg(s.QueryTime, s.Queries), avg(s.WaitTime, s.Logins)})
	}
	return res, nil
}
