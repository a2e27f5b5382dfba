"""Context-window extension by fine-tuning: position schemes + RoPE scaling on the HF Trainer."""
