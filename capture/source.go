package capture

import (
	"fmt"
	"strconv"
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
		prefix, keep, err := parseIDXSpec(arg)
		if err != nil {
			return nil, err
		}
		if keep == nil {
			imgs, err := LoadIDX(prefix, limit)
			if err != nil {
				return nil, err
			}
			return &Dataset{Spec: spec, Images: imgs}, nil
		}
		imgs, err := LoadIDX(prefix, 0)
		if err != nil {
			return nil, err
		}
		var out []*Image
		for _, im := range imgs {
			if (keep == nil || keep[im.Label]) && (limit <= 0 || len(out) < limit) {
				out = append(out, im)
			}
		}
		return &Dataset{Spec: spec, Images: out}, nil
	case "dir":
		r, err := LoadDir(arg, limit)
		if err != nil {
			return nil, err
		}
		return &Dataset{Spec: spec, Images: r.Images, Skipped: r.Skipped}, nil
	}
	return nil, fmt.Errorf("capture: source %q: unknown kind %q (want idx or dir)", spec, kind)
}

// parseIDXSpec reads "PREFIX" or "PREFIX?labels=0,1,2,3" (the images of
// those classes only).
func parseIDXSpec(arg string) (prefix string, keep map[int]bool, err error) {
	prefix, query, found := strings.Cut(arg, "?")
	if !found {
		return prefix, nil, nil
	}
	list, ok := strings.CutPrefix(query, "labels=")
	if !ok || list == "" {
		return "", nil, fmt.Errorf("capture: idx:%s: the only option is labels=N,N,...", arg)
	}
	keep = map[int]bool{}
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 255 {
			return "", nil, fmt.Errorf("capture: idx:%s: label %q is not 0..255", arg, f)
		}
		keep[n] = true
	}
	return prefix, keep, nil
}
