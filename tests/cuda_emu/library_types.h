// library_types.h (emulated) - CUDA's data-type tags, with the real header's
// names and values (cublasLt.h's layouts and scale types name them). Only
// the real types are listed; which of them the emulated cuBLASLt computes
// with is in cublasLt.h.
#ifndef CUDA_EMU_LIBRARY_TYPES_H
#define CUDA_EMU_LIBRARY_TYPES_H

typedef enum cudaDataType_t {
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_8I = 3,
    CUDA_R_8U = 8,
    CUDA_R_32I = 10,
    CUDA_R_8F_E4M3 = 28,
    CUDA_R_8F_E5M2 = 29,
} cudaDataType;
typedef enum cudaDataType_t cudaDataType_t;

#endif
