"""genbench: train and compare GAN, VAE, RealNVP and DDPM on equal terms."""
