package main

import (
	"io"

	"go.uber.org/zap/zapcore"
)

func zapcoreNew(cfg zapcore.EncoderConfig, w io.Writer) zapcore.Core {
	return zapcore.NewCore(zapcore.NewConsoleEncoder(cfg), zapcore.AddSync(w), zapcore.WarnLevel)
}
