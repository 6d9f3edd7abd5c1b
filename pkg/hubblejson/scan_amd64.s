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
