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

// ActivationFloats counts the outputs of every convolution of one forward
// pass of a size x size image through the encoder: what a training step
// keeps per image, per copy (see TrainingBytes).
func (a Arch) ActivationFloats(size int) int64 {
	var n int64
	conv := func(cout, k, stride int) {
		size = (size+2*(k/2)-k)/stride + 1
		n += int64(size * size * cout)
	}
	conv(a.StemWidth, 3, 1)
	a.blocks(func(_, _, cin, w, stride int) {
		conv(w, 3, stride)
		conv(w, 3, 1)
		if cin != w || stride != 1 {
			n += int64(size * size * w)
		}
	})
	return n
}

// TrainingBytes estimates the memory of training at batch b with crops of
// the given sizes: each convolution's output is kept about four times over
// (the output, its batch-normalized copy, the gradients going back, the
// lowered input of the next product), plus weights, gradients, momentum and
// the two state copies the trainer keeps to undo a bad step. Within a
// factor of two of what `swavd bench --pipeline` measures; used to refuse a
// configuration that cannot fit, not to budget exactly.
func (a Arch) TrainingBytes(b int, cropSizes []int) int64 {
	var act int64
	for _, s := range cropSizes {
		act += a.ActivationFloats(s)
	}
	return 4 * (4*int64(b)*act + 5*a.ParamFloats())
}

// ParamFloats counts the learned scalars without building the model.
func (a Arch) ParamFloats() int64 {
	var n int64
	conv := func(cin, cout, k int) { n += int64(cin*cout*k*k + 2*cout) } // weights, BN scale and shift
	conv(a.InputChannels, a.StemWidth, 3)
	out := a.blocks(func(_, _, cin, w, stride int) {
		conv(cin, w, 3)
		conv(w, w, 3)
		if cin != w || stride != 1 {
			conv(cin, w, 1)
		}
	})
	n += int64(out*a.HeadHidden+a.HeadHidden) + int64(2*a.HeadHidden) + int64(a.HeadHidden*a.ProjDim+a.ProjDim) + int64(a.Prototypes*a.ProjDim)
	return n
}
