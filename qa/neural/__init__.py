"""The trained reader: e5's lower layers read question and passage apart (passage states can be
computed at index time), a few fine-tuned upper layers read them together and point at the answer."""
