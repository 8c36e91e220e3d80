package model

// ForwardFLOPs counts the multiply-adds (x2) of one forward pass of a
// size x size image through the encoder and head: convolutions and linear
// layers only, which are all but a sliver of the work.
func (a Arch) ForwardFLOPs(size int) int64 {
	var macs int64
	conv := func(cin, cout, k, stride int) {
		size = (size+2*(k/2)-k)/stride + 1
		macs += int64(size*size) * int64(cout*cin*k*k)
	}
	conv(a.InputChannels, a.StemWidth, 3, 1)
	cin := a.StemWidth
	for i, w := range a.Stages {
		for j := 0; j < a.BlocksPerStage; j++ {
			stride := 1
			if i > 0 && j == 0 {
				stride = 2
			}
			in := size
			conv(cin, w, 3, stride)
			conv(w, w, 3, 1)
			if cin != w || stride != 1 {
				out := size
				size = in
				conv(cin, w, 1, stride)
				size = out
			}
			cin = w
		}
	}
	macs += int64(cin*a.HeadHidden + a.HeadHidden*a.ProjDim + a.ProjDim*a.Prototypes)
	return 2 * macs
}
