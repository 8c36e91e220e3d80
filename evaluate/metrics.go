// Package evaluate measures what a model learned: a weighted kNN
// classifier on backbone features, and how well prototype assignments agree
// with labels (NMI, ARI).
package evaluate

import "math"

// contingency counts pairs (a[i], b[i]).
func contingency(a, b []int) (table map[[2]int]float64, ca, cb map[int]float64) {
	table, ca, cb = map[[2]int]float64{}, map[int]float64{}, map[int]float64{}
	for i := range a {
		table[[2]int{a[i], b[i]}]++
		ca[a[i]]++
		cb[b[i]]++
	}
	return table, ca, cb
}

func entropy(counts map[int]float64, n float64) float64 {
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := c / n
			h -= p * math.Log(p)
		}
	}
	return h
}

// NMI is the normalized mutual information of two labelings with
// arithmetic-mean normalization (scikit-learn's default). Two constant
// labelings agree perfectly (1).
func NMI(a, b []int) float64 {
	n := float64(len(a))
	if n == 0 {
		return 0
	}
	table, ca, cb := contingency(a, b)
	ha, hb := entropy(ca, n), entropy(cb, n)
	if ha == 0 && hb == 0 {
		return 1
	}
	var mi float64
	for k, c := range table {
		mi += c / n * math.Log(c*n/(ca[k[0]]*cb[k[1]]))
	}
	return math.Max(0, mi/((ha+hb)/2))
}

// ARI is the adjusted Rand index of two labelings.
func ARI(a, b []int) float64 {
	n := float64(len(a))
	table, ca, cb := contingency(a, b)
	c2 := func(x float64) float64 { return x * (x - 1) / 2 }
	var sumIJ, sumA, sumB float64
	for _, c := range table {
		sumIJ += c2(c)
	}
	for _, c := range ca {
		sumA += c2(c)
	}
	for _, c := range cb {
		sumB += c2(c)
	}
	expected := sumA * sumB / c2(n)
	maxIdx := (sumA + sumB) / 2
	if maxIdx == expected {
		return 1
	}
	return (sumIJ - expected) / (maxIdx - expected)
}

// Distinct is the number of different values in a.
func Distinct(a []int) int {
	seen := map[int]bool{}
	for _, v := range a {
		seen[v] = true
	}
	return len(seen)
}
