// erlmr/cuda.hpp — the optional CUDA backend: CudaDevice, the ops on
// Var<T, CudaDevice> and the device optimisers. Include this (after or instead of
// erlmr/erlmr.hpp) and link erlmr::cuda (built with -DERLMR_CUDA=ON). See docs/cuda.md.
#pragma once
#include "erlmr/erlmr.hpp"
#include "erlmr/cuda/device.hpp"
#include "erlmr/cuda/ops.hpp"
#include "erlmr/cuda/optim.hpp"
