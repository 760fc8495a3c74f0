"""What to boot: the image model, the reference image builder, SD card images."""
