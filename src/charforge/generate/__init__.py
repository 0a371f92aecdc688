"""Generation: text-to-image with LoRAs, schedulers, PNG metadata, contact sheets."""
