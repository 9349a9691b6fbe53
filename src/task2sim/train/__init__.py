"""Pre-training, feature extraction and downstream evaluation of backbones (torch + timm)."""
