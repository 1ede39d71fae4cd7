"""Search terms from the search boxes of the major engines and image and video sites, from real URL shapes."""

import pytest

from gateway.content.search_terms import search_terms


@pytest.mark.parametrize(
    ("host", "path", "query", "terms"),
    [
        # Google: web, images, video, country domains, autocomplete as typed.
        ("www.google.com", "/search", "q=minecraft+cheats&oq=minecraft&sourceid=chrome&ie=UTF-8", "minecraft cheats"),
        ("www.google.co.uk", "/search", "q=cute+cats&tbm=isch&source=lnms", "cute cats"),
        ("www.google.co.uk", "/search", "q=volcano+video&tbm=vid", "volcano video"),
        ("www.google.de", "/search", "q=katzen&hl=de", "katzen"),
        ("www.google.com", "/complete/search", "q=how+to+mak&client=gws-wiz", "how to mak"),
        ("images.google.com", "/search", "q=dogs&tbm=isch", "dogs"),
        # Bing: web, images, videos.
        ("www.bing.com", "/search", "q=vpn&form=QBLH", "vpn"),
        ("www.bing.com", "/images/search", "q=sunset&form=HDRSC2&first=1", "sunset"),
        ("www.bing.com", "/videos/search", "q=lego+star+wars&FORM=HDRSC3", "lego star wars"),
        # DuckDuckGo, including its HTML and lite versions.
        ("duckduckgo.com", "/", "q=proxy%20site&t=h_&ia=web", "proxy site"),
        ("html.duckduckgo.com", "/html/", "q=free+games", "free games"),
        ("lite.duckduckgo.com", "/lite/", "q=weather", "weather"),
        # Yahoo: web, images, video.
        ("uk.search.yahoo.com", "/search", "p=games&fr=yfp-t", "games"),
        ("images.search.yahoo.com", "/search/images", "p=horses&fr=yfp-t", "horses"),
        ("video.search.yahoo.com", "/search/video", "fr=yfp-t&p=funny+goats", "funny goats"),
        # YouTube, on the web and mobile.
        ("www.youtube.com", "/results", "search_query=skibidi+toilet", "skibidi toilet"),
        ("m.youtube.com", "/results", "sp=mAEA&search_query=maths+revision", "maths revision"),
        # Wikipedia in any language, by query and by path.
        ("en.wikipedia.org", "/w/index.php", "search=photosynthesis&title=Special%3ASearch&ns0=1", "photosynthesis"),
        ("pl.wikipedia.org", "/w/index.php", "search=fotosynteza", "fotosynteza"),
        ("en.wikipedia.org", "/wiki/Special:Search", "search=roman+britain&go=Go", "roman britain"),
        ("en.wikipedia.org", "/wiki/Special:Search/Great_Fire_of_London", "", "Great Fire of London"),
        ("ar.m.wikipedia.org", "/w/index.php", "search=%D8%A7%D9%84%D8%A3%D9%86%D8%AF%D9%84%D8%B3", "الأندلس"),
        # Image and video sites.
        ("vimeo.com", "/search", "q=animation", "animation"),
        ("www.dailymotion.com", "/search/cute%20cats/videos", "", "cute cats"),
        ("www.dailymotion.com", "/search/football", "", "football"),
        ("www.pinterest.co.uk", "/search/pins/", "q=cake%20ideas&rs=typed", "cake ideas"),
        ("uk.pinterest.com", "/search/boards/", "q=art", "art"),
        ("www.flickr.com", "/search/", "text=red%20kite", "red kite"),
        ("www.ecosia.org", "/search", "method=index&q=trees", "trees"),
        ("www.ecosia.org", "/images", "q=owls", "owls"),
        ("www.tiktok.com", "/search", "q=dance&t=1700000000", "dance"),
    ],
)
def test_search_terms_per_engine(host, path, query, terms):
    assert search_terms(host, query, path) == terms


@pytest.mark.parametrize(
    ("host", "path", "query"),
    [
        ("www.example.com", "/search", "q=not+a+search+engine"),
        ("www.google.com", "/search", "hl=en"),
        # A Google redirect and a YouTube watch page carry a `q`/`v` that is not a search.
        ("www.google.com", "/url", "q=https://example.com/&sa=U"),
        ("www.youtube.com", "/watch", "v=dQw4w9WgXcQ&q=x"),
        ("www.bing.com", "/maps", "q=london"),
        ("vimeo.com", "/123456", "q=x"),
        ("en.wikipedia.org", "/wiki/Special:Search/", ""),
        # Look-alike hosts are not the engines.
        ("google.evil.example", "/search", "q=x"),
        ("notyoutube.com", "/results", "search_query=x"),
    ],
)
def test_not_a_search(host, path, query):
    assert search_terms(host, query, path) is None


def test_without_a_path_the_query_alone_is_read():
    assert search_terms("www.google.co.uk", "q=minecraft+cheats&safe=active") == "minecraft cheats"


def test_terms_are_trimmed_and_bounded():
    assert search_terms("www.bing.com", "q=" + "a+" * 600, "/search") == " ".join(["a"] * 250)
