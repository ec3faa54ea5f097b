// Package deploy holds the deployment kit of mmreplicate: the systemd unit
// (mmreplicate.service), the config template (mmreplicate.yml.template), the
// installer (install.sh), the disaster recovery runbook (RECOVERY.md) and the
// monitoring kit (monitoring/: Prometheus alert rules with their unit tests and a
// Grafana dashboard).
//
// It has no Go code of its own; its tests install the kit into a temporary
// DESTDIR with the real binary and check the result.
package deploy
