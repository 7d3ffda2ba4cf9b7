// Package fleet tests several real multigres processes behind a real TCP
// load balancer (HAProxy, round robin) as clients see them: one service.
// Its tests cover cancel requests that land on any process (peering, see
// docs/scaling.md) and a process killed under load.
//
// The tests need the haproxy binary (Debian's package: `apt-get install
// haproxy`, or `scripts/ensure-deps.sh haproxy`, which `make test` runs);
// without it they skip, except under CI, where they fail.
package fleet
