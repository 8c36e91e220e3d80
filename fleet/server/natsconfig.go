package server

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/swavd/swavd/fleet"
	"github.com/swavd/swavd/fleet/certs"
)

// NATSAuthConfig writes the devices' permissions as nats-server
// configuration, for an external NATS cluster: client TLS with
// verify_and_map (the certificate's subject is the user), and one user per
// issued, unrevoked certificate with fleet.DevicePermissions; the fleet
// service's user has no limits. Include it from every node's config and
// reload the nodes (nats-server --signal reload) after issuing or
// revoking: a removed user's connections are closed on reload.
func NATSAuthConfig(certDir string) (string, error) {
	abs, err := filepath.Abs(certDir)
	if err != nil {
		return "", err
	}
	ids, err := certs.Issued(abs)
	if err != nil {
		return "", err
	}
	users := make([]string, 0, len(ids))
	for user := range ids {
		users = append(users, user)
	}
	sort.Strings(users)
	q := strconv.Quote
	list := func(subjects []string) string {
		for i := range subjects {
			subjects[i] = q(subjects[i])
		}
		return "[" + strings.Join(subjects, ", ") + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by swav-fleet certs nats-config from %s: %d users.\n", abs, len(users))
	fmt.Fprintf(&b, "tls {\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n  verify_and_map: true\n  timeout: 5\n}\n",
		q(filepath.Join(abs, certs.ServerFile)), q(filepath.Join(abs, certs.ServerKeyFile)), q(filepath.Join(abs, certs.CAFile)))
	b.WriteString("authorization {\n  users = [\n")
	for _, user := range users {
		id := ids[user]
		if id.Role == certs.RoleFleet {
			fmt.Fprintf(&b, "    {user: %s}\n", q(user))
			continue
		}
		pub, sub := fleet.DevicePermissions(id.Name)
		fmt.Fprintf(&b, "    {user: %s, permissions: {publish: {allow: %s}, subscribe: {allow: %s}, allow_responses: {max: 1, expires: %s}}}\n",
			q(user), list(pub), list(sub), q(fleet.ReplyWithin.String()))
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}
