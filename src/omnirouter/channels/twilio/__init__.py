"""Twilio: SMS and WhatsApp messaging webhooks, Voice status and transcription callbacks."""
