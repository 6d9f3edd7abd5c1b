#include "textflag.h"

// func scanPlain16(b []byte, j int) int
//
// Sixteen bytes at a time from j while sixteen remain: returns the offset of
// the first byte that is '"', '\\', a control character (< 0x20) or not
// ASCII (>= 0x80), or the first offset with fewer than sixteen bytes left.
// One signed compare (0x20 > x) flags both control and non-ASCII bytes.
TEXT ·scanPlain16(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	MOVQ j+24(FP), AX
	MOVQ $0x2222222222222222, R8
	MOVQ R8, X1
	PUNPCKLQDQ X1, X1
	MOVQ $0x5c5c5c5c5c5c5c5c, R8
	MOVQ R8, X2
	PUNPCKLQDQ X2, X2
	MOVQ $0x2020202020202020, R8
	MOVQ R8, X3
	PUNPCKLQDQ X3, X3
	SUBQ $16, DX // the last offset a block can start at

loop:
	CMPQ AX, DX
	JGT  done
	MOVOU (SI)(AX*1), X0
	MOVO X0, X4
	PCMPEQB X1, X4
	MOVO X0, X5
	PCMPEQB X2, X5
	POR X5, X4
	MOVO X3, X6
	PCMPGTB X0, X6
	POR X6, X4
	PMOVMSKB X4, CX
	TESTL CX, CX
	JNZ found
	ADDQ $16, AX
	JMP loop

found:
	BSFL CX, CX
	ADDQ CX, AX

done:
	MOVQ AX, ret+32(FP)
	RET

// func countStructural16(b []byte, from int, c *structural) int
//
// Adds to c the '"', '{' or '[', and '}' or ']' bytes of the whole 16-byte
// blocks of b[from:], sets c.backslash if any of them holds a '\\' and
// c.special if any holds a control character, a byte >= 0x80, or a '{' or
// '[' right after a '}' or ']' (b[from-1] included: from >= 1); returns the
// offset after the last block. Each count is kept per byte lane (PSUBB of
// the compare masks) for at most 255 blocks, then summed (PSADBW) into c.
// x|0x20 is 0x7b for '{' and '[' only, 0x7d for '}' and ']' only.
TEXT ·countStructural16(SB), NOSPLIT, $0-48
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	MOVQ from+24(FP), BX
	MOVQ c+32(FP), DI
	SUBQ BX, DX
	ANDQ $-16, DX
	ADDQ BX, DX
	MOVQ DX, ret+40(FP)
	ADDQ SI, DX // the end of the last whole block
	ADDQ BX, SI
	MOVQ $0x2222222222222222, R8
	MOVQ R8, X1
	PUNPCKLQDQ X1, X1
	MOVQ $0x7b7b7b7b7b7b7b7b, R8
	MOVQ R8, X2
	PUNPCKLQDQ X2, X2
	MOVQ $0x7d7d7d7d7d7d7d7d, R8
	MOVQ R8, X3
	PUNPCKLQDQ X3, X3
	MOVQ $0x5c5c5c5c5c5c5c5c, R8
	MOVQ R8, X6
	PUNPCKLQDQ X6, X6
	MOVQ $0x2020202020202020, R8
	MOVQ R8, X7
	PUNPCKLQDQ X7, X7
	PXOR X11, X11
	PXOR X13, X13
	PXOR X15, X15

outer:
	CMPQ SI, DX
	JGE  done
	PXOR X8, X8
	PXOR X9, X9
	PXOR X10, X10
	MOVQ $255, CX

inner:
	MOVOU (SI), X0
	MOVOU -1(SI), X4 // each byte's predecessor
	MOVO X0, X14
	PCMPEQB X1, X14
	PSUBB X14, X8
	MOVO X0, X12
	POR X7, X12
	MOVO X12, X14
	PCMPEQB X2, X14 // opening brackets
	PSUBB X14, X9
	PCMPEQB X3, X12
	PSUBB X12, X10
	POR X7, X4
	PCMPEQB X3, X4
	PAND X14, X4 // an opening bracket after a closing one
	POR X4, X13
	MOVO X0, X14
	PCMPEQB X6, X14
	POR X14, X11
	MOVO X7, X14
	PCMPGTB X0, X14
	POR X14, X13
	ADDQ $16, SI
	CMPQ SI, DX
	JGE  flush
	DECQ CX
	JNZ  inner

flush:
	PSADBW X15, X8
	PSHUFD $0xee, X8, X14
	PADDQ X14, X8
	MOVQ X8, AX
	ADDQ AX, 0(DI)
	PSADBW X15, X9
	PSHUFD $0xee, X9, X14
	PADDQ X14, X9
	MOVQ X9, AX
	ADDQ AX, 8(DI)
	PSADBW X15, X10
	PSHUFD $0xee, X10, X14
	PADDQ X14, X10
	MOVQ X10, AX
	ADDQ AX, 16(DI)
	JMP  outer

done:
	PMOVMSKB X11, AX
	TESTL AX, AX
	JZ   nobackslash
	MOVB $1, 24(DI)

nobackslash:
	PMOVMSKB X13, AX
	TESTL AX, AX
	JZ   ret
	MOVB $1, 25(DI)

ret:
	RET

// func countStructural32(b []byte, from int, c *structural) int
//
// countStructural16 with AVX2, 32 bytes at a time (the caller checks that
// the CPU has AVX2).
TEXT ·countStructural32(SB), NOSPLIT, $0-48
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	MOVQ from+24(FP), BX
	MOVQ c+32(FP), DI
	SUBQ BX, DX
	ANDQ $-32, DX
	ADDQ BX, DX
	MOVQ DX, ret+40(FP)
	ADDQ SI, DX // the end of the last whole block
	ADDQ BX, SI
	MOVQ $0x22, R8
	MOVQ R8, X1
	VPBROADCASTB X1, Y1
	MOVQ $0x7b, R8
	MOVQ R8, X2
	VPBROADCASTB X2, Y2
	MOVQ $0x7d, R8
	MOVQ R8, X3
	VPBROADCASTB X3, Y3
	MOVQ $0x5c, R8
	MOVQ R8, X6
	VPBROADCASTB X6, Y6
	MOVQ $0x20, R8
	MOVQ R8, X7
	VPBROADCASTB X7, Y7
	VPXOR Y11, Y11, Y11
	VPXOR Y13, Y13, Y13
	VPXOR Y15, Y15, Y15

outer32:
	CMPQ SI, DX
	JGE  done32
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	MOVQ $255, CX

inner32:
	VMOVDQU (SI), Y0
	VMOVDQU -1(SI), Y4 // each byte's predecessor
	VPCMPEQB Y1, Y0, Y14
	VPSUBB Y14, Y8, Y8
	VPOR Y7, Y0, Y12
	VPCMPEQB Y2, Y12, Y14 // opening brackets
	VPSUBB Y14, Y9, Y9
	VPCMPEQB Y3, Y12, Y12
	VPSUBB Y12, Y10, Y10
	VPOR Y7, Y4, Y4
	VPCMPEQB Y3, Y4, Y4
	VPAND Y14, Y4, Y4 // an opening bracket after a closing one
	VPOR Y4, Y13, Y13
	VPCMPEQB Y6, Y0, Y14
	VPOR Y14, Y11, Y11
	VPCMPGTB Y0, Y7, Y14
	VPOR Y14, Y13, Y13
	ADDQ $32, SI
	CMPQ SI, DX
	JGE  flush32
	DECQ CX
	JNZ  inner32

flush32:
	VPSADBW Y15, Y8, Y8
	VEXTRACTI128 $1, Y8, X14
	VPADDQ X14, X8, X8
	VPSHUFD $0xee, X8, X14
	VPADDQ X14, X8, X8
	VMOVQ X8, AX
	ADDQ AX, 0(DI)
	VPSADBW Y15, Y9, Y9
	VEXTRACTI128 $1, Y9, X14
	VPADDQ X14, X9, X9
	VPSHUFD $0xee, X9, X14
	VPADDQ X14, X9, X9
	VMOVQ X9, AX
	ADDQ AX, 8(DI)
	VPSADBW Y15, Y10, Y10
	VEXTRACTI128 $1, Y10, X14
	VPADDQ X14, X10, X10
	VPSHUFD $0xee, X10, X14
	VPADDQ X14, X10, X10
	VMOVQ X10, AX
	ADDQ AX, 16(DI)
	JMP  outer32

done32:
	VPMOVMSKB Y11, AX
	TESTL AX, AX
	JZ   nobackslash32
	MOVB $1, 24(DI)

nobackslash32:
	VPMOVMSKB Y13, AX
	TESTL AX, AX
	JZ   ret32
	MOVB $1, 25(DI)

ret32:
	VZEROUPPER
	RET
