package daemon

import "fmt"

func errMismatch(what string, got, want int) error {
	return fmt.Errorf("%s for %d clusters; the model has %d", what, got, want)
}
