"""The Aillio Bullet R2 (USB 0483:a4cd): protocol, pyusb driver and virtual roaster."""
