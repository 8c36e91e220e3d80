package cpu

import (
	"testing"

	"github.com/swavd/swavd/compute/computetest"
)

func TestReferenceVectors(t *testing.T) { computetest.TestVectors(t, New()) }

func TestFiniteDifferenceGradients(t *testing.T) { computetest.TestGradients(t, New()) }
