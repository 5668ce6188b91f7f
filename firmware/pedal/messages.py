"""What the pedal tells people, in plain words: the page's notices after an action
(post/redirect/get carries only a short code, `/?m=deleted`, never text a link could
forge), and errors turned into sentences a guitarist can act on."""

from tonecore.errors import SignInError, TransportError, TrustError

# code -> (text, good news)
NOTICES = {
    "paired": ("This phone is paired with the pedal.", True),
    "deleted": ("Model deleted.", True),
    "active": ("Model in use.", True),
    "sync-started": ("Sync started.", True),
    "sync-running": ("A sync is already running.", False),
    "signed-out": ("Signed out. The models stay on the pedal.", True),
    "not-signed-in": ("Sign in first: the pedal is not signed in to TONE3000 (maybe in another tab).", False),
    "busy": ("A sync is running: try again when it is done.", False),
    "gone": ("That model is no longer on the pedal (deleted in another tab?).", False),
    "pushing": ("A model is arriving over USB: try again in a moment.", False),
    "unpaired": ("Every phone was unpaired.", True),
}

WIFI = "TONE3000 could not be reached (or answered too slowly): check the pedal's Wi-Fi, then try again."


def in_words(exc):
    """A sentence for the page about why a sign-in or a sync failed."""
    if isinstance(exc, TransportError):
        return WIFI
    if isinstance(exc, TrustError):
        return "The pedal could not verify TONE3000's certificate; check that its clock and Wi-Fi are right."
    text = str(exc)
    if isinstance(exc, SignInError):
        if "declined" in text:
            return "You declined the sign-in on TONE3000. Nothing changed; sign in again when you like."
        if "cancel" in text:
            return "The sign-in was cancelled. Nothing changed."
        if "expired" in text:
            return "The sign-in took too long and expired. Please start again."
    return (text[:1].upper() + text[1:]) if text else "Something went wrong."
