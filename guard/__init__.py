"""Static checks of the platform's code; ``guard.json_mutations`` finds lost JSON writes (JSN001)."""
