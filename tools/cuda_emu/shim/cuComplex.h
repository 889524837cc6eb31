// tools/cuda_emu/shim/cuComplex.h — cuComplex / cuDoubleComplex as in the real header
// (float2 / double2: two reals, real part first).
#pragma once
#include "cuda_runtime_api.h"
typedef float2 cuFloatComplex;
typedef double2 cuDoubleComplex;
typedef cuFloatComplex cuComplex;
