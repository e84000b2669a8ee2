"""Word filtering against a module-level set of stop words (and a frozenset)."""

from executors import executor

STOPWORDS = {"the", "a", "of", "and", "to"}
VOWELS = frozenset("aeiou")


def keywords(text):
    return [word for word in text.lower().split() if word not in STOPWORDS]


def vowel_count(word):
    return sum(letter in VOWELS for letter in word)


def main():
    with executor() as ex:
        print(ex.submit(keywords, "The art of war and the sea").result())
        print(list(ex.map(vowel_count, ["queue", "rhythm"])))


if __name__ == "__main__":
    main()
