"""bulksend: bulk SMS and WhatsApp campaigns that never message anyone twice or without consent."""

__version__ = "0.1.0"
