package main

import (
	"context"
	"errors"
	"log/slog"
)

func runProduction(ctx context.Context, f flags, getenv func(string) string, log *slog.Logger) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	_ = cfg
	return errors.New("production adapters are wired in the adapters change")
}
