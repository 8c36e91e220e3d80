// Package fleet holds what a device (swavd) and the fleet server
// (swav-fleet) share: device identities, the NATS subjects they talk on,
// the messages, and the snapshot format.
//
// Devices dial out to NATS over mTLS; nothing dials a device. The fleet
// server pulls a device by a request on the device's own pull subject, with
// the digest it already holds; the device answers "unchanged" or with its
// snapshot. A device announces itself on its announce subject when it
// connects and every AnnounceEvery after. A device's certificate gives it
// exactly these two subjects (and replies to requests it received), so it
// can neither read another device's requests nor speak for another device.
package fleet

import (
	"fmt"
	"regexp"
	"time"
)

// Subjects.
const (
	subjectRoot = "swav.dev"
	// AnnounceAll is what the fleet server subscribes to for announcements.
	AnnounceAll = subjectRoot + ".*.announce"
)

// PullSubject is where the fleet server asks device id for its snapshot.
func PullSubject(id string) string { return subjectRoot + "." + id + ".pull" }

// BaseSubject is where the fleet sends device id the fleet's base model.
// Only the fleet may publish there, so a base that arrives on it comes over
// the fleet's authenticated connection; the device checks its digest again.
func BaseSubject(id string) string { return subjectRoot + "." + id + ".base" }

// AnnounceSubject is where device id announces itself.
func AnnounceSubject(id string) string { return subjectRoot + "." + id + ".announce" }

// DeviceFromAnnounce returns the device id of an announce subject.
func DeviceFromAnnounce(subject string) (string, bool) {
	m := announceRE.FindStringSubmatch(subject)
	if m == nil {
		return "", false
	}
	return m[1], true
}

var (
	idRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	announceRE = regexp.MustCompile(`^swav\.dev\.([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.announce$`)
)

// CheckDeviceID accepts ids that are one NATS subject token, a file name
// and a certificate name at once: letters, digits, '-' and '_', 64 at most.
func CheckDeviceID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("device id %q: use 1-64 letters, digits, '-' or '_', starting with a letter or digit", id)
	}
	return nil
}

// DevicePermissions are what a device's certificate allows it on NATS:
// publish its announcements, subscribe to its own pull requests and base
// deliveries, and answer each request it received once within ReplyWithin. Nothing else:
// no other device's subjects, no JetStream API, no inbox of its own.
func DevicePermissions(id string) (publish, subscribe []string) {
	return []string{AnnounceSubject(id)}, []string{PullSubject(id), BaseSubject(id)}
}

// ReplyWithin is how long a device may take to answer a pull request.
const ReplyWithin = 5 * time.Minute

// AnnounceEvery is how often a connected device announces itself; the
// fleet server takes a device as offline after three missed announcements.
const AnnounceEvery = 30 * time.Second

// Announce is what a device publishes on its announce subject.
type Announce struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Preset  string    `json:"preset"`
	Step    int       `json:"step"`
	Share   string    `json:"share"`  // prototypes | model
	Digest  string    `json:"digest"` // of the snapshot it would send now, if built
	At      time.Time `json:"at"`
	// EverySeconds is how often it announces; three missed mean offline.
	EverySeconds float64 `json:"every_s"`
	// Base is the digest of the fleet base its weights started from ("" for
	// none); WantsBase asks the fleet to send its base (fleet.base on a
	// device without state of its own, or a rebase).
	Base      string `json:"base,omitempty"`
	WantsBase bool   `json:"wants_base,omitempty"`
}

// PullRequest is the fleet server's request; Have is the digest of the
// device's newest snapshot it stores ("" for none).
type PullRequest struct {
	Have string `json:"have"`
}

// Reply headers: the status and the digest of the snapshot (or of the one
// the fleet already has, for unchanged).
const (
	HeaderStatus = "Swav-Status"
	HeaderDigest = "Swav-Digest"
	HeaderError  = "Swav-Error"

	StatusSnapshot  = "snapshot"
	StatusUnchanged = "unchanged"
	StatusError     = "error"
	StatusLoaded    = "loaded" // a base delivery was taken
)
