package capture

import (
	"fmt"
	"strings"
)

// Dataset is a set of images held in memory, for training and evaluation.
type Dataset struct {
	Spec    string
	Images  []*Image
	Skipped []error
}

// Open loads a data set from a source spec: "idx:PREFIX" or "dir:PATH".
// limit > 0 keeps at most limit images.
func Open(spec string, limit int) (*Dataset, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok || arg == "" {
		return nil, fmt.Errorf("capture: source %q: want idx:PATH or dir:PATH", spec)
	}
	switch kind {
	case "idx":
		imgs, err := LoadIDX(arg, limit)
		if err != nil {
			return nil, err
		}
		return &Dataset{Spec: spec, Images: imgs}, nil
	case "dir":
		r, err := LoadDir(arg, limit)
		if err != nil {
			return nil, err
		}
		return &Dataset{Spec: spec, Images: r.Images, Skipped: r.Skipped}, nil
	}
	return nil, fmt.Errorf("capture: source %q: unknown kind %q (want idx or dir)", spec, kind)
}
