"""Medical data pipeline: readers (NIfTI, DICOM, MetaImage, PNG), one canonical orientation (LPS+), transforms,
manifest-driven recipes, synthetic phantoms in the real formats, and StyleGAN2-ADA zip packaging."""
