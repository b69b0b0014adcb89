"""The views layer: notebook widgets (live panel, frame explorer) and the walkthrough of one
update. Imports every layer below it; nothing below imports it."""
