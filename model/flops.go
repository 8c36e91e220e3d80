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
	out := a.blocks(func(_, _, cin, w, stride int) {
		in := size
		conv(cin, w, 3, stride)
		conv(w, w, 3, 1)
		if cin != w || stride != 1 { // the 1x1 shortcut, from the block's input size
			after := size
			size = in
			conv(cin, w, 1, stride)
			size = after
		}
	})
	macs += int64(out*a.HeadHidden + a.HeadHidden*a.ProjDim + a.ProjDim*a.Prototypes)
	return 2 * macs
}
